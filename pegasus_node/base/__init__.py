"""Small building blocks shared by every process: key encoding, hashing, timetags, the reactor."""
