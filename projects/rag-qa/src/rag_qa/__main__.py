from rag_qa.cli import main

raise SystemExit(main())
