// EarTagAudio: placeholder until its first real source lands.
