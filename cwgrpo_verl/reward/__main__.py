"""``python -m cwgrpo_verl.reward --self-check DATA_DIR``: see :func:`cwgrpo_verl.reward.self_check`."""

from . import main

raise SystemExit(main())
