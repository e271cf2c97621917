"""Planning a tuning run: scaling-law fits over nested data fractions and model sizes (`fit`), the
extrapolation check (`extrapolation`), model selection at a budget (`selection`) and the recipe
`tuneforge scaling` (`run`)."""
