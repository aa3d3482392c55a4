"""FER-2013 and its faces as tensors: the readers (CSV, image folder, compact file, cache),
the paper's preprocessing and the training augmentation."""
