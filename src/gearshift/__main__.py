from gearshift.cli.main import main

raise SystemExit(main())
