"""``python -m cwgrpo_verl.demo [--quick] [--seeds 0,1,2] [--methods vanilla,clip_cov,cw_grpo] [--out DIR]``."""

import sys

from cwgrpo_verl.demo.cli import main

sys.exit(main())
