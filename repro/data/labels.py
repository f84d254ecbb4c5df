"""The Cityscapes label table (cityscapesscripts' `labels`), as the arrays the project reads colours through:
rendering the synthetic city's colour maps, colourising class maps in the report. One place, built once."""

import numpy as np
from cityscapesscripts.helpers.labels import labels as CITYSCAPES_LABELS

VOID_TRAIN_ID = 19  # trainIds 0..18 are the 19 classes; 19 stands for "no class" in class maps

COLOUR_BY_ID = np.zeros((256, 3), np.uint8)  # labelId -> official colour of the gtFine_color.png files
HAS_INSTANCES = np.zeros(256, bool)           # labelId -> whether gtFine instance ids exist for it
COLOUR_BY_TRAIN_ID = np.zeros((256, 3), np.uint8)  # trainId -> the class colour; void (19 and up) black
for _label in CITYSCAPES_LABELS:
    if 0 <= _label.id < 256:
        COLOUR_BY_ID[_label.id] = _label.color
        HAS_INSTANCES[_label.id] = _label.hasInstances
    if 0 <= _label.trainId < VOID_TRAIN_ID:
        COLOUR_BY_TRAIN_ID[_label.trainId] = _label.color
