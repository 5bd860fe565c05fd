"""The names of the evaluation split protocols (``recsys.split`` implements them). Standard
library only: configs and DAG params validate against these without importing pandas."""

GLOBAL_TIME = "global_time"
USER_TIME = "user_time"
LEAVE_LAST_OUT = "leave_last_out"
RANDOM = "random"
PROTOCOLS = (GLOBAL_TIME, USER_TIME, LEAVE_LAST_OUT, RANDOM)
# Whether each user's training videos are excluded from the ranking at evaluation. The TFRS
# basic-retrieval tutorial's random split excludes nothing (its top-K accuracy counts re-finds).
EXCLUDES_TRAIN_ITEMS = {GLOBAL_TIME: True, USER_TIME: True, LEAVE_LAST_OUT: True, RANDOM: False}
