"""tsmetrics: Trust & Safety prevalence monitoring."""
