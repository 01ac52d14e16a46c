"""``python -m napari_normxcorr.cli``: the command line."""

import sys

from ._commands import main

sys.exit(main())
