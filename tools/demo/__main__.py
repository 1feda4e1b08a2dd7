"""``python -m tools.demo [--quick] [--seeds 0,1,2] [--methods vanilla,cw_grpo] [--out DIR] [--docs DIR]``."""

from tools.demo.cli import main

raise SystemExit(main())
