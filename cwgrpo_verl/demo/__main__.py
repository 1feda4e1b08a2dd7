"""``python -m cwgrpo_verl.demo [--quick] [--seeds 0,1,2] [--methods vanilla,cw_grpo] [--out DIR] [--docs DIR]``."""

import sys

from cwgrpo_verl.demo.cli import main

sys.exit(main())
