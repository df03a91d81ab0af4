"""Patrol and inspection rounds (巡检): routes of checkpoints, schedules, and the pure planning
of what is due, late and missed (`gateway.rounds.planning`)."""
