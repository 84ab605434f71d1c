from ensemble.cli import main

raise SystemExit(main())
