from cwgrpo_verl.report.cli import main

raise SystemExit(main())
