"""The warning category kerastune_ft emits (tests turn it into errors)."""


class KerasTuneFTWarning(UserWarning):
    """Something was skipped, guessed or changed; the message says what and why."""
