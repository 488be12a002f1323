"""Operating the running gateway: backups and restores, checks, ps and logs, up/down/uninstall, upgrades."""
