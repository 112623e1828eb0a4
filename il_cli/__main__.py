from il_cli.cli import main

main()
