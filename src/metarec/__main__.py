from metarec.cli import main

main()
