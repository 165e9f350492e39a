"""Nightly training: session building, the time split, baselines and offline evaluation."""
