"""The book's figures, one module per part of the book."""
