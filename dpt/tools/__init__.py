"""Command-line tools: log parsing, result tables, paper comparison and plots."""
