"""Operating the running gateway: backups, restores and checks."""
