"""Text augmentation (issue 4). Placeholder until implemented."""


class TextAugmenter:
    def __init__(self, *args, **kwargs):
        raise NotImplementedError("TextAugmenter is being written (issue 4).")


def augment_dataset(*args, **kwargs):
    raise NotImplementedError("augment_dataset is being written (issue 4).")
