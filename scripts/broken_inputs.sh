#!/usr/bin/env bash
# Feeds fovea the broken inputs of its test suite (and a few more) and prints, as a markdown
# table, each case, the command and the first line fovea answers on standard error. Its output
# is docs/BROKEN_INPUTS.md:  scripts/broken_inputs.sh > docs/BROKEN_INPUTS.md
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
fovea=${FOVEA:-$here/target/release/fovea}
[ -x "$fovea" ] || (cd "$here" && cargo build --release -q)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

py() { local code=$1; shift; python3 -c "$code" "$@"; }
idx() { # idx FILE DIMS... < data  (plain IDX of unsigned bytes)
  local f=$1; shift
  py "import struct,sys; d=[int(x) for x in sys.argv[1:]]; sys.stdout.buffer.write(bytes([0,0,8,len(d)])+b''.join(struct.pack('>I',x) for x in d)+sys.stdin.buffer.read())" "$@" > "$f"
}
mnist_like() { # a valid 3-image MNIST in folder $1
  mkdir -p "$1"
  head -c $((3*28*28)) /dev/zero | idx "$1/train-images-idx3-ubyte" 3 28 28
  printf '\x01\x02\x03' | idx "$1/train-labels-idx1-ubyte" 3
  cp "$1/train-images-idx3-ubyte" "$1/t10k-images-idx3-ubyte"; cp "$1/train-labels-idx1-ubyte" "$1/t10k-labels-idx1-ubyte"
}
# One table row: case, command (as typed, relative to a scratch folder), what fovea says.
row() {
  local what=$1; shift
  local said
  said=$("$fovea" "$@" 2>&1 >/dev/null | grep -v '^warning: replacing' | head -1 | sed 's/|/\\|/g')
  printf '| %s | `fovea %s` | %s |\n' "$what" "$*" "${said:-(nothing: accepted)}"
}

echo "# Broken inputs and what fovea says"
echo
echo "Each case of the test suite's broken inputs (and a few more), run on the real binary by"
echo "\`scripts/broken_inputs.sh\` in a scratch folder; the answer is the first line fovea prints"
echo "on standard error, the exit status is 1 (130 for Ctrl-C). Nothing is written when a command"
echo "is refused. Fuzzing (\`scripts/fuzz.sh\`) and \`tests/fuzz_regressions.rs\` hold the readers"
echo "to the same standard over arbitrary bytes."
echo
echo "| case | command | what fovea says |"
echo "| --- | --- | --- |"

"$fovea" train --model lenet5 --epochs 1 --data "$here/tests/data/images" --out tmp >/dev/null 2>&1 # not a data set: no run
mnist_like ok
"$fovea" --threads 2 train --model lenet5 --epochs 1 --batch-size 3 --val-size 0 --data ok --out run >/dev/null 2>&1

row "--data that does not exist" eval --model lenet5 --weights run/best.safetensors --data nowhere
printf 'x' > afile
row "--data that is a file" eval --model lenet5 --weights run/best.safetensors --data afile
mkdir -p empty
row "--data folder with nothing fovea reads" eval --model lenet5 --weights run/best.safetensors --data empty
mnist_like magic; printf '\x12\x34\x08\x03' > magic/train-images-idx3-ubyte
row "IDX file with a wrong magic number" train --model lenet5 --data magic --out r1
mnist_like trunc; head -c 100 /dev/zero | idx trunc/train-images-idx3-ubyte 3 28 28
row "IDX file shorter than its header says" train --model lenet5 --data trunc --out r2
mnist_like huge; head -c 100 /dev/zero | idx huge/train-images-idx3-ubyte 4000000000 28 28
row "IDX header claiming terabytes" train --model lenet5 --data huge --out r3
mnist_like count; printf '\x01\x02' | idx count/train-labels-idx1-ubyte 2
row "labels that do not match the images" train --model lenet5 --data count --out r4
mnist_like label; printf '\x01\x0c\x03' | idx label/train-labels-idx1-ubyte 3
row "a label that is not a digit" train --model lenet5 --data label --out r5
mkdir -p cifar; head -c 5000 /dev/zero > cifar/data_batch_1.bin; head -c 3073 /dev/zero > cifar/test_batch.bin
row "CIFAR-10 batch of a wrong size" train --model resnet18 --input 3x32x32 --data cifar --out r6
mkdir -p folder/cat; printf 'not a png' > folder/cat/1.png
row "image folder with a broken PNG" train --model lenet5 --data folder --out r7
py "import struct,zlib
def c(t,d): return struct.pack('>I',len(d))+t+d+struct.pack('>I',zlib.crc32(t+d))
open('giant.png','wb').write(b'\x89PNG\r\n\x1a\n'+c(b'IHDR',struct.pack('>IIBBBBB',100000,100000,8,2,0,0,0))+c(b'IDAT',zlib.compress(b''))+c(b'IEND',b''))"
row "PNG claiming 100,000 x 100,000 pixels" predict --model lenet5 --weights run/best.safetensors giant.png
row "a folder given as an image" predict --model lenet5 --weights run/best.safetensors folder
printf 'hello' > text.png
row "a text file named .png" predict --model lenet5 --weights run/best.safetensors text.png
head -c 64 /dev/urandom > random.safetensors
row "weights file of random bytes" predict --model lenet5 --weights random.safetensors text.png
row "weights of another model" predict --model mnist-cnn --weights run/best.safetensors text.png
py "
import json,struct,math
f=open('$work/run/best.safetensors','rb').read(); n=struct.unpack('<Q',f[:8])[0]; h=json.loads(f[8:8+n]); body=bytearray(f[8+n:])
o=h['fc1.weight']['data_offsets'][0]; body[o:o+4]=struct.pack('<f',math.nan)
open('nan.safetensors','wb').write(f[:8+n]+bytes(body))"
row "weights with a NaN" predict --model lenet5 --weights nan.safetensors text.png
mkdir -p badcfg && cp run/last.safetensors run/metrics.jsonl badcfg/ && printf '{"model": "lenet5", "epochs": ' > badcfg/config.json
row "--resume with a torn config.json" train --resume badcfg
mkdir -p zerocfg && cp run/last.safetensors run/metrics.jsonl zerocfg/ && sed 's/"batch_size": [0-9]*/"batch_size": 0/' run/config.json > zerocfg/config.json
row "--resume with batch size 0 in config.json" train --resume zerocfg
row "--resume with another optimizer" train --resume run --optimizer sgd
row "--out that already holds a run" train --model lenet5 --data ok --out run
row "--out under a file" train --model lenet5 --data ok --out afile/run
row "picture format the name does not say" viz filters --model lenet5 --weights run/best.safetensors -o f.gif
cp "$here/tests/data/images/camera.png" photo.png
row "a layer that is not there" viz activations --model lenet5 --weights run/best.safetensors --layer conv9 photo.png
row "a class out of range" viz class --model lenet5 --weights run/best.safetensors --class 12
row "a neuron option on a class ascent" viz class --model lenet5 --weights run/best.safetensors --neuron conv1:0
row "a filter parameter out of range" filter --kernel gaussian:-1 afile
row "a preset that does not exist" viz class --model lenet5 --weights run/best.safetensors --class 1 --preset 7
row "an input too small for the model" summary alexnet --input 3x32x32
row "a learning rate that diverges" train --model lenet5 --data ok --out r8 --lr 1e30 --optimizer sgd --val-size 0 --batch-size 3
echo
echo "A full disk while writing a checkpoint (\`tests/crash.rs\`, on a 1.2 MB tmpfs):"
echo "\`error: <run>/last.safetensors: cannot write: No space left on device (os error 28) (training"
echo "stopped at step 2; the checkpoint of step 1 is intact; make room and continue with: fovea train"
echo "--resume <run>)\`; the previous checkpoint stays whole and no temporary file is left behind."
