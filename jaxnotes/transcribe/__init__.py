"""`jaxnotes-transcribe`: audio files, standard input or a sound card -> notes -> MIDI files
or a MIDI port (cli).
"""
