"""System tests: real `guanjia edge run` and `guanjia gateway run` processes, a real broker."""
