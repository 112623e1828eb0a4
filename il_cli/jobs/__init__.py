"""Jobs: what each command does, as plain functions of (config, run, ui). No CLI code here."""
