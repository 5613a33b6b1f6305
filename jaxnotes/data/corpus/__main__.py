"""`python -m jaxnotes.data.corpus`: renders the default corpus (see build.main)."""

from jaxnotes.data.corpus.build import main

main()
