"""What a run and a sweep show: plots, probes, the model card, the leaderboard, report.html."""
