"""From output trees to numbers: log parsing, run discovery, result tables, the paper's numbers and plots."""
