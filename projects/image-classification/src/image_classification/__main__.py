from image_classification.cli import main

raise SystemExit(main())
