"""One module per subcommand: parse, validate, call a job, print. No algorithm code."""
