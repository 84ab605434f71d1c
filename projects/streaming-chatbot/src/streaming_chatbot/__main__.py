from streaming_chatbot.cli import main

raise SystemExit(main())
