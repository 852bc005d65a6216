package policy

# The sample stack's built-in `default` policy: evidence that the sample verifiers accepted is
# affirmed on every trust claim. Anything else keeps the contraindicating defaults of the
# openanolis EAR default policy.

default executables := 33

default hardware := 97

default configuration := 36

default file_system := 35

sample_tee if input.sample

sample_tee if input.sampledevice

executables := 2 if sample_tee

hardware := 2 if sample_tee

configuration := 2 if sample_tee

file_system := 2 if sample_tee
