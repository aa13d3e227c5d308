"""runner_entry"""
