"""The napari side: the dock widget and everything it owns.

Only this subpackage imports napari, Qt or magicgui; the engine below it
runs without them.
"""
