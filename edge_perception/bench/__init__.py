"""Benchmarks behind `edge-perception bench ...`: one module per subcommand, each printing one
JSON line with --json."""
