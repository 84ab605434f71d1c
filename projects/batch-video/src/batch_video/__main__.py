from batch_video.cli import main

raise SystemExit(main())
