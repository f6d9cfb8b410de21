"""The state space model and what every other package builds on. Importing it changes no process-wide setting."""
