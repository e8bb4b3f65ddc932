"""Errors every driver raises the same way, so entry points can print them plainly."""


class DeviceNotFoundError(RuntimeError):
    """The device is not attached, not visible (permissions), or does not answer."""


class DeviceLostError(RuntimeError):
    """The device answered before and has stopped answering."""
