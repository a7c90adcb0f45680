"""Tools that print, plot and write files: fitting the step-time model's device profiles to
published measurements and checking it against them. They import the domain packages; no
domain package imports them."""
