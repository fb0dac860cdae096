"""Batch scoring: the nightly job over every series and farm, and single heavy requests,
on Celery workers or in-process, through the same predictor service as online serving."""
