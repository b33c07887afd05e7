"""Whether this computer's user is away: the operating system's last-input time (idle.py) and the workstation
lending policy built on it (lending.py). No Qt: headless nodes use it too."""
