"""Survey workflow on top of single fits: plausible values (Rubin's rules), weight scaling and
weight summaries."""
