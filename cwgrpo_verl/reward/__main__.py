"""``python -m cwgrpo_verl.reward --self-check DATA_DIR``: see :mod:`cwgrpo_verl.reward.self_check`."""

import sys

from .self_check import main

sys.exit(main())
