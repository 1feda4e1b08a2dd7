import sys

from cwgrpo_verl.report.cli import main

sys.exit(main())
