"""The ``seqrec`` command line: one subcommand per component, imported only when used."""
