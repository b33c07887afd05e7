"""Pure-Python core: the job spec, the job record and the DATA_DIR layout. Imports no Qt, redis, cv2 or av."""
