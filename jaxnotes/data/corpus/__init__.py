"""The default corpus: MusicNet-layout audio and labels that jaxnotes renders itself.

build (which works, sizes, layout, resume, command line) -> rendering (one piece: score or
texture -> MIDI -> audio -> acoustics -> labels), with scores (music21 parts -> timed
events), piano (the sampled Salamander piano), textures (generated piano music: its
segment state in texture_segment, the note patterns in texture_kinds) and acoustics
(room, microphone, noise). Produces a folder that `jaxnotes.data.musicnet` reads like the
real release; nothing here is imported by training or inference.
"""
