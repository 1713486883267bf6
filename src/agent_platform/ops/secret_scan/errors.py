"""Bad input to a scan: the command turns it into one line and exit code 2."""


class SecretScanError(Exception):
    pass
