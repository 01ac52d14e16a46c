import sys
from pathlib import Path

# Reference implementations live beside the tests.
sys.path.insert(0, str(Path(__file__).parent))
