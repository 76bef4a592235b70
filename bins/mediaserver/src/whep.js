// framebus WHEP player: plays a camera of the media server in a <video> element over WebRTC.
// framebusWhep(video, url, onState, options) → {close()}; reconnects by itself after a failure.
// options.authorization: an Authorization header value for the server's WHEP requests (e.g.
// "Basic " + btoa("user:password") when [auth] has a users file and the page is of another
// origin; the server's own pages need none: the browser sends the credentials it was given).
(function () {
  function gathered(pc, ms) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise(function (done) {
      var timer = setTimeout(done, ms);
      pc.addEventListener("icegatheringstatechange", function () {
        if (pc.iceGatheringState === "complete") { clearTimeout(timer); done(); }
      });
    });
  }

  function headers(options, extra) {
    var h = extra || {};
    if (options.authorization) h.Authorization = options.authorization;
    return h;
  }

  async function session(video, url, options) {
    var pc = new RTCPeerConnection({ iceServers: [] });
    var transceiver = pc.addTransceiver("video", { direction: "recvonly" });
    // Lowest latency: play each frame as soon as it is decoded.
    if ("jitterBufferTarget" in transceiver.receiver) transceiver.receiver.jitterBufferTarget = 0;
    if ("playoutDelayHint" in transceiver.receiver) transceiver.receiver.playoutDelayHint = 0;
    pc.ontrack = function (e) {
      video.srcObject = e.streams && e.streams[0] ? e.streams[0] : new MediaStream([e.track]);
      video.play().catch(function () {});
    };
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc, 2000);
    var response = await fetch(url, { method: "POST", headers: headers(options, { "Content-Type": "application/sdp" }), body: pc.localDescription.sdp });
    if (response.status !== 201) {
      pc.close();
      throw new Error("WHEP " + response.status + ": " + (await response.text()).trim());
    }
    var location = new URL(response.headers.get("Location") || url, url).href;
    await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
    return { pc: pc, location: location };
  }

  window.framebusWhep = function (video, url, onState, options) {
    var current = null, closed = false, retry = null;
    onState = onState || function () {};
    options = options || {};
    function end() {
      if (current) {
        var s = current; current = null;
        s.pc.close();
        fetch(s.location, { method: "DELETE", headers: headers(options) }).catch(function () {});
      }
    }
    function again(why) {
      end();
      if (closed) return;
      onState("retrying: " + why);
      retry = setTimeout(start, 2000);
    }
    function start() {
      onState("connecting");
      session(video, url, options).then(function (s) {
        if (closed) { current = s; end(); return; }
        current = s;
        s.pc.addEventListener("connectionstatechange", function () {
          onState(s.pc.connectionState);
          if (s.pc.connectionState === "failed" || s.pc.connectionState === "closed") again(s.pc.connectionState);
        });
      }, function (e) { again(e.message); });
    }
    window.addEventListener("pagehide", end);
    start();
    return { close: function () { closed = true; clearTimeout(retry); end(); } };
  };
})();
