from bridge_gen.cli import main

main()
