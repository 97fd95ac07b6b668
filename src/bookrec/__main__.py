from bookrec.cli import main

main()
