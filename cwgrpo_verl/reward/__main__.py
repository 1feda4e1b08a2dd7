"""``python -m cwgrpo_verl.reward --self-check DATA_DIR``: see :mod:`cwgrpo_verl.reward.self_check`."""

from .self_check import main

raise SystemExit(main())
